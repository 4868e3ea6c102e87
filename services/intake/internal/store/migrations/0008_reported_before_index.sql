-- "Reported before?" without scanning every stored file (issue 18): the
-- search reads indexes only, so its cost stays flat as the history grows.
-- Creating the indexes indexes the files already stored.

-- Exact matches: the same SHA-256 (files_sha256, 0001) or the same MD5.
CREATE INDEX files_md5 ON files (md5);

-- Similar images: multi-index hashing over the 256 PDQ bits cut into 11
-- pieces (three of 24 bits, then eight of 23), one index per piece. The
-- layout is pdqChunks in pdqindex.go, which says why; the two must agree.
-- Not partial indexes (WHERE pdq_bits IS NOT NULL): the planner uses no
-- statistics of a partial index's expression, and without them it misjudges
-- the probes and plans a scan.
CREATE INDEX files_pdq_0 ON files ((substring(pdq_bits FROM 1 FOR 24)::int));
CREATE INDEX files_pdq_1 ON files ((substring(pdq_bits FROM 25 FOR 24)::int));
CREATE INDEX files_pdq_2 ON files ((substring(pdq_bits FROM 49 FOR 24)::int));
CREATE INDEX files_pdq_3 ON files ((substring(pdq_bits FROM 73 FOR 23)::int));
CREATE INDEX files_pdq_4 ON files ((substring(pdq_bits FROM 96 FOR 23)::int));
CREATE INDEX files_pdq_5 ON files ((substring(pdq_bits FROM 119 FOR 23)::int));
CREATE INDEX files_pdq_6 ON files ((substring(pdq_bits FROM 142 FOR 23)::int));
CREATE INDEX files_pdq_7 ON files ((substring(pdq_bits FROM 165 FOR 23)::int));
CREATE INDEX files_pdq_8 ON files ((substring(pdq_bits FROM 188 FOR 23)::int));
CREATE INDEX files_pdq_9 ON files ((substring(pdq_bits FROM 211 FOR 23)::int));
CREATE INDEX files_pdq_10 ON files ((substring(pdq_bits FROM 234 FOR 23)::int));
