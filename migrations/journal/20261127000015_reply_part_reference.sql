-- A reply that a channel sends one part at a time (a GSM modem) records
-- each part in `reply_parts` as it leaves, with the concatenation reference
-- of its parts here, before the reply is settled: after a crash it resumes
-- with the parts not yet sent, under the same reference, so the handset
-- joins one reply. NULL for every other reply.
ALTER TABLE replies ADD COLUMN part_reference INTEGER;
