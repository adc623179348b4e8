"""Coverage answers: the town gazetteer, the compiled point, grid and nearest searches, the snapshot."""
