"""Everything that knows how Zoom spells things: signatures, events, cards, tokens and the API."""
