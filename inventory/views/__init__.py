"""Pages of the inventory app (thin: the services in ``inventory.services`` work)."""
