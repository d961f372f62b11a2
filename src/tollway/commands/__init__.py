"""The `tollway` subcommands of the control plane: `store` (migrate, export, import, apply,
admin-token, secret-key) and `admin` (the admin API's common tasks). `tollway.cli` adds them."""
