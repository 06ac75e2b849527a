"""Deals and touchpoints: the B2B flow, where partners touch a deal before it closes."""
