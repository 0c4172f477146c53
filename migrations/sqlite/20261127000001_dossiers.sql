-- The read model: one row per dossier, as last received from the one-stop core.
-- Times are local Vietnamese time (Asia/Ho_Chi_Minh) in ISO form "YYYY-MM-DD HH:MM:SS".
CREATE TABLE dossiers (
    code            TEXT    PRIMARY KEY NOT NULL, -- canonical MaHoSo
    procedure_name  TEXT,                         -- TenTTHC
    agency_name     TEXT,                         -- DonViXuLy
    status          INTEGER NOT NULL CHECK (status BETWEEN 1 AND 10), -- TrangThaiHoSo
    received_at     TEXT,                         -- NgayTiepNhan
    appointment_at  TEXT,                         -- NgayHenTra
    finished_at     TEXT,                         -- NgayKetThucXuLy
    returned_at     TEXT,                         -- NgayTra
    owner_phone     TEXT,                         -- SoDienThoai, international digits
    owner_name      TEXT,                         -- ChuHoSo
    version         INTEGER NOT NULL CHECK (version >= 1),
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
