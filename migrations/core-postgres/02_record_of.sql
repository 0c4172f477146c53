-- THE CORE TEAM ADAPTS THIS FILE: how a row of the dossier table becomes the
-- portal-shaped record the feed serves (docs/core-feed.md, "The record").
-- Written here for the example table public.dossiers (00_sample_core_table.sql);
-- change the parameter type and the column names to your table's. The
-- keys must stay the portal's. `version` and `deleted` are added by the relay.
--
-- Dates are `yyyyMMddHHmmss` in Vietnam time or "". The example's columns
-- are `timestamp` in local time; for `timestamptz` columns write
-- to_char(d.col AT TIME ZONE 'Asia/Ho_Chi_Minh', 'YYYYMMDDHH24MISS').
BEGIN;

CREATE SCHEMA IF NOT EXISTS motcua_feed;

CREATE OR REPLACE FUNCTION motcua_feed.portal_time(t timestamp) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(to_char(t, 'YYYYMMDDHH24MISS'), '')
$$;

CREATE OR REPLACE FUNCTION motcua_feed.record_of(d public.dossiers) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'MaHoSo',          d.ma_ho_so,
        'TenTTHC',         coalesce(d.ten_tthc, ''),
        'DonViXuLy',       coalesce(d.don_vi_xu_ly, ''),
        'TrangThaiHoSo',   d.trang_thai_ho_so,
        'NgayTiepNhan',    motcua_feed.portal_time(d.ngay_tiep_nhan),
        'NgayHenTra',      motcua_feed.portal_time(d.ngay_hen_tra),
        'NgayKetThucXuLy', motcua_feed.portal_time(d.ngay_ket_thuc_xu_ly),
        'NgayTra',         motcua_feed.portal_time(d.ngay_tra),
        'SoDienThoai',     coalesce(d.so_dien_thoai, ''),
        'ChuHoSo',         coalesce(d.chu_ho_so, '')
    )
$$;

COMMIT;
