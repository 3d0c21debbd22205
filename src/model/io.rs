//! Saving and loading models (filled in with the export format).
