-- Reply template versions edited in the admin console (src/admin/templates.rs).
-- A version is saved only after the checks activation makes (it compiles, it
-- uses only the reply variables, every sample dossier fits the segment
-- budget); saving does not put it in use. Times are Unix milliseconds, UTC.
CREATE TABLE template_versions (
    id          INTEGER PRIMARY KEY,
    template    TEXT    NOT NULL,            -- the reply kind: found, not_found, help, ...
    source      TEXT    NOT NULL,            -- the minijinja text
    author      TEXT    NOT NULL,            -- the account that saved it
    note        TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX template_versions_by_template ON template_versions (template, id);

-- Every change of the text in use, newest last: the version in use for a
-- template is the one its latest row names. A roll back is a row too, naming
-- the activation it undid, so that rolling back again goes one step further
-- back instead of returning to what was just undone.
CREATE TABLE template_activations (
    id          INTEGER PRIMARY KEY,
    template    TEXT    NOT NULL,
    version_id  INTEGER REFERENCES template_versions (id), -- NULL = back to the file or built-in text
    actor       TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    undoes      INTEGER REFERENCES template_activations (id) -- a roll back: the activation it undid
) STRICT;
CREATE INDEX template_activations_by_template ON template_activations (template, id);
