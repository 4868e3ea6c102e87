-- "Reported before?": the PDQ hash as bits, so a Hamming distance is one
-- XOR and a bit count in SQL. The search scans every PDQ; at the volumes of
-- one trust-and-safety team that takes milliseconds (an index structure for
-- Hamming space, such as multi-index hashing, is the step beyond).
ALTER TABLE files ADD COLUMN pdq_bits bit(256)
    GENERATED ALWAYS AS (CASE WHEN pdq IS NULL THEN NULL ELSE ('x' || pdq)::bit(256) END) STORED;

-- Earlier finished reports about the same uploader, for priorCTReports.
CREATE INDEX reports_uploader_username ON reports ((details -> 'uploader' ->> 'username'));
CREATE INDEX reports_uploader_email ON reports ((lower(details -> 'uploader' ->> 'email')));
