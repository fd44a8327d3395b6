"""Models: training, evaluation, explanation, segments and the model card."""
