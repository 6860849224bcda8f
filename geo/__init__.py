"""Geographic referential of France (departments, communes, neighbours) and spatial helpers."""
