-- EXAMPLE ONLY — for tests and demos. Do NOT run this on a real core.
--
-- A stand-in for the core's own dossier table, with columns that mirror the
-- national portal's record fields. A real core already has its table (with
-- other names and many more columns): adapt motcua_feed.record_of() in
-- 02_record_of.sql and the trigger in 03_capture.sql to it instead.
BEGIN;

CREATE TABLE IF NOT EXISTS public.dossiers (
    ma_ho_so            text PRIMARY KEY,          -- MaHoSo
    ten_tthc            text NOT NULL DEFAULT '',  -- TenTTHC
    don_vi_xu_ly        text NOT NULL DEFAULT '',  -- DonViXuLy
    trang_thai_ho_so    smallint NOT NULL CHECK (trang_thai_ho_so BETWEEN 1 AND 10), -- TrangThaiHoSo
    ngay_tiep_nhan      timestamp,                 -- NgayTiepNhan (local time, Asia/Ho_Chi_Minh)
    ngay_hen_tra        timestamp,                 -- NgayHenTra
    ngay_ket_thuc_xu_ly timestamp,                 -- NgayKetThucXuLy
    ngay_tra            timestamp,                 -- NgayTra
    so_dien_thoai       text NOT NULL DEFAULT '',  -- SoDienThoai
    chu_ho_so           text NOT NULL DEFAULT ''   -- ChuHoSo
);

COMMIT;
