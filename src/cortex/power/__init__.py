"""Power and cooling: the throughput-versus-cap curve, hall thermals and PUE, ramp limits,
batteries, electricity prices, and the fine-grained power-swing tool."""
