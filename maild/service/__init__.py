"""Running maild as a system service: systemd notification, reload, health and metrics, logs."""
