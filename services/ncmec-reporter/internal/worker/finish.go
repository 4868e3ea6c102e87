package worker

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/events"
	"takedown/pkg/filing"
	"takedown/pkg/logging"
	"takedown/pkg/ncmec"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/ncmec-reporter/internal/store"
)

func (j *job) finish() error {
	f := j.f
	switch err := j.p.d.Handover.ClaimFinish(j.ctx, f.ReportID, f.Filing); {
	case errors.Is(err, filing.ErrRetracting):
		return errRetracted
	case err != nil:
		// Never finish without the claim: wait for the bucket.
		return &transient{step: StepFinish, err: fmt.Errorf("handover: %w", err)}
	}
	done, err := j.client.Finish(j.ctx, f.NCMECID)
	if err := j.p.reached("finish:sent"); err != nil {
		return err
	}
	ours := make([]string, 0, len(f.Files))
	for _, file := range f.Files {
		ours = append(ours, file.NCMECFileID)
	}
	call := store.Call{Endpoint: ncmec.EndpointFinish}
	receiptIDs, learnt := ours, filing.FromReceipt
	switch {
	case err == nil:
		call.RequestID, call.Response = done.RequestID, done.Raw
		receiptIDs = done.Files.IDs
		for _, id := range ours {
			if !slices.Contains(receiptIDs, id) {
				j.log.Error("NCMEC's receipt does not list one of our files", logging.KeyNCMECFileID, id)
			}
		}
	case judge(StepFinish, err).then == finished:
		// Finished by an earlier call whose answer was lost: the goal is
		// reached, though that call's receipt is gone.
		call.Err, learnt = err, filing.FromFinish5102
		j.log.Warn("NCMEC says the report was already finished; recording it as finished without a receipt", logging.KeyErr, err)
	default:
		return j.callFailed(StepFinish, nil, "", err)
	}
	extraOf, extraIDs := extraCopies(f.Files, ours, receiptIDs)
	if len(extraOf) > 0 || len(extraIDs) > 0 {
		j.log.Warn("NCMEC may hold extra copies without details: an upload whose answer was lost was repeated",
			"files", extraOf, "extra_ncmec_file_ids", extraIDs)
	}
	ev, err := events.New(f.ReportID, events.Service(j.p.cfg.Service), &pb.NcmecFinished{
		NcmecReportId: f.NCMECID, NcmecFileIds: receiptIDs, ReceiptXml: string(call.Response), FinishedAt: timestamppb.Now(),
		Filing: uint32(f.Filing), LearnedFrom: learnt, ExtraCopiesOf: extraOf, ExtraNcmecFileIds: extraIDs})
	if err != nil {
		return err
	}
	if err := j.p.d.Store.Finished(j.ctx, f, call, receiptIDs, ev); err != nil {
		return err
	}
	j.p.outcomes.WithLabelValues("finished").Inc()
	j.log.Info("NCMEC report finished", "files", len(receiptIDs))
	if err := j.p.reached("finish"); err != nil {
		return err
	}
	if err := j.p.d.Handover.Finished(j.ctx, f.ReportID, f.Filing); err != nil {
		// "finishing" already makes the retraction service answer 409.
		j.log.Warn("handover: could not mark the report finished", logging.KeyErr, err)
	}
	return nil
}

// extraCopies names the files of which NCMEC may hold an extra copy without
// details: an upload attempt beyond the one recorded that NCMEC did not
// refuse (its answer was lost, or the worker died during it) may have added
// one. The protocol cannot name the lost copy; the receipt's file ids beyond
// ours are those copies.
func extraCopies(files []store.File, ours, receipt []string) (fileIDs, ncmecIDs []string) {
	for _, f := range files {
		if f.UploadAttempts-f.UploadRefused > 1 {
			fileIDs = append(fileIDs, f.FileID)
		}
	}
	for _, id := range receipt {
		if !slices.Contains(ours, id) {
			ncmecIDs = append(ncmecIDs, id)
		}
	}
	return fileIDs, ncmecIDs
}
