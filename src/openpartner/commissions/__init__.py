"""Commissions: what each partner earns per event, under the program's versioned rules."""
