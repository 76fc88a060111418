"""Runtime pieces every service needs in the same way: logging set-up and stream set-up."""
