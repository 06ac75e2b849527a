"""Partners: the people and companies who share links and earn commissions."""
