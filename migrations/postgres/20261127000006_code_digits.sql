-- Keypad lookups (USSD): a phone keypad types digits only, so a citizen
-- types the code's digits and leaves its letters out (000.00.12.H58-240315-0007
-- → 0000012582403150007). The same column as migrations/sqlite/: the digits of
-- the canonical code, computed by the database, and indexed. Two dossiers may
-- share their digits (H58 / G58): the lookup returns every match.
ALTER TABLE dossiers ADD COLUMN code_digits text COLLATE "C"
    GENERATED ALWAYS AS (regexp_replace(code, '[^0-9]', '', 'g')) STORED;
CREATE INDEX dossiers_code_digits ON dossiers (code_digits);
