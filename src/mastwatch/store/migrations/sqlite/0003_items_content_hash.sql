-- mastwatch SQLite schema, version 3.
-- Lets a poll ask "has this source already shown an item with this content?" cheaply, so a
-- feed that mints new GUIDs on every fetch for unchanged items raises no alert storm.
CREATE INDEX items_content_hash ON items (source_id, content_hash);
