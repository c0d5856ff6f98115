"""Images, files, voice and video, both ways (docs/media.md)."""
