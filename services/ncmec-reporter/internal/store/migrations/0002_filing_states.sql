-- The filing states are pkg/filing's (an open report is "opened"), plus the
-- reporter's own write-ahead mark "submitting" inside pending.
ALTER TABLE filings DROP CONSTRAINT filings_state_check;
UPDATE filings SET state = 'opened' WHERE state = 'open';
ALTER TABLE filings ADD CONSTRAINT filings_state_check
    CHECK (state IN ('pending', 'submitting', 'opened', 'finished', 'failed', 'retracted'));
DROP INDEX filings_due;
CREATE INDEX filings_due ON filings (next_attempt_at) WHERE state IN ('pending', 'submitting', 'opened');

-- /submit attempts in a row that may have opened an NCMEC report whose id we
-- never learnt (DESIGN.md §5: a fresh report is opened after each).
ALTER TABLE filings ADD COLUMN ambiguous_submits int NOT NULL DEFAULT 0;

-- Upload attempts NCMEC refused with an answer: they left no copy. The other
-- attempts beyond the one recorded may have left an undescribed copy.
ALTER TABLE filing_files ADD COLUMN upload_refused int NOT NULL DEFAULT 0;
