"""Where the data lives: the database, versioned layers, GIS files, imports, the demo build."""
