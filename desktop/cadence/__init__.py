"""Cadence: cold outreach from your own mailbox, within guardrails."""

APP_ID = "io.github.cadence-outreach.Cadence"
APP_NAME = "Cadence"
__version__ = "0.1.0"
# The desktop entry / AppStream id (AppStream refuses hyphens). APP_ID stays as the keyring service name,
# so changing it would orphan stored passwords.
DESKTOP_ID = "io.github.cadence_outreach.Cadence"
