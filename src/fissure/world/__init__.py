"""The emoji world: procedural 64×64 scenes of emoji sprites with captions."""
