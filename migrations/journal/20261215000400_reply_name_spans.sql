-- Where the applicant's name stands in each reply's text: character offsets
-- "start-end" joined by commas ('' when the reply names nobody), found when
-- the reply was rendered (src/reply.rs, RenderedReply::name_spans). The
-- console masks that name for viewers however the read model changes later
-- (a new ChuHoSo, a deleted dossier). Offsets only: no personal data. NULL
-- for replies recorded before this column (the console then masks the read
-- model's name, as it did).
ALTER TABLE reply_lookups ADD COLUMN name_spans TEXT;
