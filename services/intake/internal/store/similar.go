package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/pdq"
	"takedown/services/intake/internal/report"
)

// ReportedBefore finds, for each file of rep, the files of earlier reports
// with the same SHA-256 or MD5, or a PDQ hash within maxDistance bits.
// Earlier means submitted before this report. It reads indexes, not every
// stored file (pdqindex.go), so its cost stays flat as the history grows.
func (s *Store) ReportedBefore(ctx context.Context, rep *report.Report, maxDistance int) (map[string][]report.Match, error) {
	query, args, err := reportedBeforeQuery(rep, maxDistance)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reported before: %w", err)
	}
	defer rows.Close()
	out := map[string][]report.Match{}
	for rows.Next() {
		var fileID string
		var m report.Match
		if err := rows.Scan(&fileID, &m.ReportID, &m.FileID, &m.Name, &m.By, &m.Distance, &m.SubmittedAt, &m.NCMECReportID); err != nil {
			return nil, fmt.Errorf("reported before: %w", err)
		}
		out[fileID] = append(out[fileID], m)
	}
	return out, rows.Err()
}

// reportedBeforeQuery is the lookup's SQL and arguments for the files of rep.
func reportedBeforeQuery(rep *report.Report, maxDistance int) (string, []any, error) {
	args := []any{rep.ID, maxDistance}
	var hashes []pdq.Hash
	for _, f := range rep.Files {
		if f.PDQ == "" {
			continue
		}
		h, err := pdq.ParseHash(f.PDQ)
		if err != nil {
			return "", nil, fmt.Errorf("reported before: file %s: %w", f.ID, err)
		}
		hashes = append(hashes, h)
	}
	probes, indexed := pdqProbeArgs(hashes, maxDistance)
	if !indexed {
		return reportedBeforeScan, args, nil
	}
	return reportedBeforeIndexed, append(args, probes...), nil
}

// pdqProbeArgs is the arguments of pdqPairs for hashes at maxDistance: each
// piece's probes, and false when the distance is too far for the index
// (pdqMaxProbes) and the lookup must compare every stored PDQ instead.
func pdqProbeArgs(hashes []pdq.Hash, maxDistance int) ([]any, bool) {
	if pdqProbeCount(maxDistance) > pdqMaxProbes {
		return nil, false
	}
	radii := pdqRadii(maxDistance)
	probes := make([][]int32, len(pdqChunks))
	for _, h := range hashes {
		pdqProbes(probes, h, radii)
	}
	args := make([]any, len(probes))
	for i, p := range probes {
		args[i] = p
	}
	return args, true
}

// reportedBefore is the lookup, given the SQL that pairs the report's files
// f with stored files o of a PDQ hash within $2 bits. The pairs of the same
// SHA-256 or MD5 come through those hashes' indexes. The report's files
// come from the database, as do the times that say which reports are
// earlier. Each pair carries the columns of o it needs, and its report is
// looked up by key (OFFSET 0: see pdqPairs), so that no step reads more
// rows than the matches found.
func reportedBefore(pdqPairs string) string {
	return `
		WITH f AS (
			SELECT id, idx, pdq_bits, sha256, md5 FROM files WHERE report_id = $1
		), pairs AS (
			SELECT ` + pairColumns + ` FROM f JOIN files o ON o.sha256 = f.sha256
			UNION SELECT ` + pairColumns + ` FROM f JOIN files o ON o.md5 = f.md5
			UNION ` + pdqPairs + `
		)
		SELECT f.id::text, o.report_id::text, o.id::text, o.name,
			CASE WHEN o.sha256 = f.sha256 THEN 'sha256' WHEN o.md5 = f.md5 THEN 'md5' ELSE 'pdq' END,
			CASE WHEN f.pdq_bits IS NOT NULL AND o.pdq_bits IS NOT NULL THEN bit_count(f.pdq_bits # o.pdq_bits) ELSE 0 END::int,
			p.submitted_at, coalesce(p.ncmec_report_id, 0)
		FROM pairs o
		JOIN f ON f.id = o.f
		CROSS JOIN LATERAL (SELECT submitted_at, ncmec_report_id FROM reports WHERE id = o.report_id OFFSET 0) p
		WHERE o.report_id <> $1 AND p.submitted_at < (SELECT submitted_at FROM reports WHERE id = $1)
		ORDER BY f.idx, p.submitted_at DESC, o.id
		LIMIT 1000`
}

// pairColumns is what each way of pairing a file f with a stored file o
// gives: f's id and the columns of o that the answer shows or compares.
const pairColumns = "f.id AS f, o.id, o.report_id, o.name, o.sha256, o.md5, o.pdq_bits"

var (
	// reportedBeforeIndexed probes the PDQ piece indexes with $3 … $13.
	reportedBeforeIndexed = reportedBefore(pdqPairs(3))
	// reportedBeforeScan compares every stored PDQ: for distances too far
	// for the index (pdqMaxProbes).
	reportedBeforeScan = reportedBefore(`SELECT ` + pairColumns + ` FROM f JOIN files o ON bit_count(f.pdq_bits # o.pdq_bits) <= $2`)
)

// PriorNCMECReports returns the NCMEC report ids to cite as priorCTReports
// of a report with details d: earlier reports NCMEC finished, in the same
// NCMEC environment (a production report must not cite a test report's id,
// which NCMEC's production system does not know), about the same account:
// the same platform, and the same username or the same e-mail address
// (e-mails compared case-insensitively). A username is only unique within
// its platform, so another platform's same name is someone else.
func (s *Store) PriorNCMECReports(ctx context.Context, d report.Details) ([]int64, error) {
	u := d.Uploader
	if u.Username == "" && u.Email == "" {
		return nil, nil
	}
	env := d.Environment()
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ncmec_report_id FROM reports
		WHERE ncmec_state = 'finished' AND ncmec_report_id IS NOT NULL
		  AND ncmec_environment = $3
		  AND coalesce(details ->> 'platform', '') = $4
		  AND ((details -> 'uploader' ->> 'username') = nullif($1, '')
		       OR lower(details -> 'uploader' ->> 'email') = lower(nullif($2, '')))
		ORDER BY ncmec_report_id LIMIT 100`, u.Username, u.Email, env, d.Platform)
	if err != nil {
		return nil, fmt.Errorf("prior NCMEC reports: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}
