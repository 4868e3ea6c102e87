package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"takedown/services/intake/internal/report"
)

// ReportedBefore finds, for each file of report reportID, the files of
// earlier reports with the same SHA-256 or a PDQ hash within maxDistance
// bits. Earlier means submitted before this report.
func (s *Store) ReportedBefore(ctx context.Context, reportID string, maxDistance int) (map[string][]report.Match, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT f.id::text, o.report_id::text, o.id::text, o.name,
			CASE WHEN o.sha256 = f.sha256 THEN 'sha256' ELSE 'pdq' END,
			CASE WHEN f.pdq_bits IS NOT NULL AND o.pdq_bits IS NOT NULL THEN bit_count(f.pdq_bits # o.pdq_bits) ELSE 0 END::int,
			p.submitted_at, coalesce(p.ncmec_report_id, 0)
		FROM files f
		JOIN reports r ON r.id = f.report_id
		JOIN files o ON o.report_id <> f.report_id
		JOIN reports p ON p.id = o.report_id AND p.submitted_at < r.submitted_at
		WHERE f.report_id = $1
		  AND (o.sha256 = f.sha256
		       OR (f.pdq_bits IS NOT NULL AND o.pdq_bits IS NOT NULL AND bit_count(f.pdq_bits # o.pdq_bits) <= $2))
		ORDER BY f.idx, p.submitted_at DESC
		LIMIT 1000`, reportID, maxDistance)
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
	env := "production"
	if d.Test {
		env = "test"
	}
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
