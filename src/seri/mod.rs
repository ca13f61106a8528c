//! skynet.pack serialization codec (issue 4).
