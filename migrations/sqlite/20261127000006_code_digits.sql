-- Keypad lookups (USSD): a phone keypad types digits only, so a citizen
-- types the code's digits and leaves its letters out (000.00.12.H58-240315-0007
-- → 0000012582403150007). The digits of the canonical code, computed by the
-- database (canonical codes hold only digits, capital letters, '.' and '-'),
-- and indexed. Two dossiers may share their digits (H58 / G58): the lookup
-- returns every match and the dialogue asks which.
ALTER TABLE dossiers ADD COLUMN code_digits TEXT
    GENERATED ALWAYS AS (replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(code, '.', ''), '-', ''), 'A', ''), 'B', ''), 'C', ''), 'D', ''), 'E', ''), 'F', ''), 'G', ''), 'H', ''), 'I', ''), 'J', ''), 'K', ''), 'L', ''), 'M', ''), 'N', ''), 'O', ''), 'P', ''), 'Q', ''), 'R', ''), 'S', ''), 'T', ''), 'U', ''), 'V', ''), 'W', ''), 'X', ''), 'Y', ''), 'Z', '')) VIRTUAL;
CREATE INDEX dossiers_code_digits ON dossiers (code_digits);
