"""moment layer (see DESIGN.md, Layers): the Moment API client.

``shapes`` holds every Moment JSON shape (resources, paged lists, webhook hints and their strict
decoder), ``errors`` the client's own error hierarchy, ``client`` the aiohttp client. Nothing
here stores data or retries: ingest does both.
"""
