"""Pipeline stages (one module per DVC stage) and the churnlight command line."""
