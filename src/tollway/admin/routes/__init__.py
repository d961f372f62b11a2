"""The admin API's resources, one module each."""
