"""Memory: measure a configuration's peak per phase in a fresh process, predict it analytically, find frontiers."""
