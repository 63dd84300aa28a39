"""The demo sandbox (`cadence demo`): the real app wired to a loopback SMTP server, an in-memory mailbox
and simulated recipients, on a throw-away data folder, with a clock that may run faster than real time.
Nothing here talks to anything but 127.0.0.1."""
