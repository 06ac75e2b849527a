"""OpenPartner: partner attribution and payouts with exact money and replayable attribution."""

__version__ = "0.1.0"
