-- The read model: one row per dossier, as last received from the one-stop core.
-- The same schema as migrations/sqlite/, version for version.
-- Times are local Vietnamese time (Asia/Ho_Chi_Minh), whole seconds, no zone.
-- Codes compare byte for byte (COLLATE "C"): they are ASCII identifiers, and
-- the index need not follow the database's locale.
CREATE TABLE dossiers (
    code            text COLLATE "C" PRIMARY KEY,         -- canonical MaHoSo
    procedure_name  text,                                 -- TenTTHC
    agency_name     text,                                 -- DonViXuLy
    status          smallint NOT NULL CHECK (status BETWEEN 1 AND 10), -- TrangThaiHoSo
    received_at     timestamp(0) without time zone,      -- NgayTiepNhan
    appointment_at  timestamp(0) without time zone,      -- NgayHenTra
    finished_at     timestamp(0) without time zone,      -- NgayKetThucXuLy
    returned_at     timestamp(0) without time zone,      -- NgayTra
    owner_phone     text,                                 -- SoDienThoai, international digits
    owner_name      text,                                 -- ChuHoSo
    version         bigint NOT NULL CHECK (version >= 1),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
