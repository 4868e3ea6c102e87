-- The attention queue (store/attention.go): the reports whose filing has not
-- settled or whose case failed. Every scrape of intake's metrics and every
-- page's header count reads it; with most reports finished, this index keeps
-- that a read of the few unsettled ones rather than a scan of all. The
-- predicate is mayNeedAttention there, word for word: the two must agree.
CREATE INDEX reports_attention ON reports (submitted_at)
    WHERE (ncmec_state IN ('pending', 'opened', 'uploading', 'failed', 'retracted') OR case_error IS NOT NULL);
