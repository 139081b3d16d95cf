"""Access: identities, tiers and the one policy decision point."""
