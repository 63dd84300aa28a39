"""Cadence: cold outreach from your own mailbox, within guardrails."""

APP_ID = "io.github.cadence-outreach.Cadence"
APP_NAME = "Cadence"
__version__ = "0.1.0"
