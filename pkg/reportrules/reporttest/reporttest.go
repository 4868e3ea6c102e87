// Package reporttest turns the samples of pkg/reportrules into the
// report.submitted event intake publishes for them, the one fixture of the
// property tests downstream of intake (the NCMEC report builder, the case
// mapping): every sample intake accepts must be filed and cased.
package reporttest

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/ncmec"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/reportrules"
)

// At is the incident, upload and submission time of every event.
var At = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// Submitted is the event intake publishes for a sample it accepted: the
// e-mail as intake keeps it, and what intake fills in itself (ids, sizes,
// content types, hashes, the submitter) at its longest.
func Submitted(tb testing.TB, s reportrules.Sample) *pb.ReportSubmitted {
	tb.Helper()
	email := ""
	if s.Email != "" {
		var err error
		if email, err = reportrules.Email(s.Email); err != nil {
			tb.Fatal(err)
		}
	}
	at := timestamppb.New(At)
	sub := &pb.ReportSubmitted{Report: &pb.Report{
		Id: "0190f3c2-0000-7000-8000-000000000001", IncidentType: ncmec.IncidentChildPornography, IncidentTime: at,
		Platform: s.Platform, Urls: s.URLs,
		Uploader: &pb.Uploader{Username: s.Username, Email: email, Ip: "2001:db8::ffff:ffff:ffff:ffff",
			PriorNcmecReportIds: []int64{7855776}},
		LegalApproved: s.LegalApproved, Approver: s.Approver, NotApprovedReason: s.NotApprovedReason,
		ActionsTaken: s.Actions, Notes: s.Notes, PrivateNote: s.PrivateNote, Escalate: s.Escalate,
		// The staff member's OIDC subject: at most 255 ASCII characters
		// (OpenID Connect Core §2).
		SubmittedBy: strings.Repeat("s", 255), SubmittedAt: at, Filing: math.MaxUint32,
	}}
	for i, f := range s.Files {
		sub.Files = append(sub.Files, &pb.File{
			Id: fmt.Sprintf("0190f3c2-0000-7000-8000-%012d", i), Index: uint32(i), Name: f.Name,
			Size: math.MaxInt64, ContentType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
			Md5: strings.Repeat("a", 32), Sha1: strings.Repeat("b", 40), Sha256: strings.Repeat("c", 64), Pdq: strings.Repeat("d", 64),
			LocationUrl: f.LocationURL, Annotations: f.Annotations, OriginalUploadTime: at, UploaderIp: "2001:db8::1",
			IndustryClassification: ncmec.ClassA1, ViewedByStaff: i%2 == 0,
		})
	}
	return sub
}
