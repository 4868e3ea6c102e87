package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/logging"
	"takedown/pkg/ncmec"
	pb "takedown/pkg/proto/takedown/v1"
	build "takedown/services/ncmec-reporter/internal/filing"
	"takedown/services/ncmec-reporter/internal/store"
)

// files uploads and describes every file not done yet, a few at a time.
func (j *job) files() error {
	sem := make(chan struct{}, j.p.cfg.UploadParallel)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return first != nil }
	for i := range j.f.Files {
		file := &j.f.Files[i]
		if file.Described {
			continue
		}
		sem <- struct{}{}
		if failed() || j.stop.Err() != nil || j.ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := j.file(file); err != nil {
				mu.Lock()
				// A reason to give up outranks a reason to retry.
				var ft *fatal
				if first == nil || (errors.As(err, &ft) && !errors.As(first, &ft)) {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	if j.stop.Err() != nil {
		return errStopped
	}
	return j.ctx.Err()
}

func (j *job) pbFile(idx int) *pb.File {
	for _, f := range j.f.Submitted.Files {
		if int(f.Index) == idx {
			return f
		}
	}
	return &pb.File{Index: uint32(idx)}
}

func (j *job) file(file *store.File) error {
	f := j.f
	if file.NCMECFileID == "" {
		if err := j.upload(file); err != nil {
			return err
		}
		if err := j.p.reached("upload:" + strconv.Itoa(file.Idx)); err != nil {
			return err
		}
	}
	doc, err := ncmec.EncodeFileDetails(build.FileDetails(j.pbFile(file.Idx), f.NCMECID, file.NCMECFileID))
	if err != nil {
		return &fatal{step: StepFileInfo, desc: "the file details cannot be built: " + err.Error(), fileID: file.FileID}
	}
	resp, err := j.client.FileInfoXML(j.ctx, doc)
	if err != nil {
		return j.callFailed(StepFileInfo, &file.Idx, file.FileID, err)
	}
	ev, err := events.New(f.ReportID, events.Service(j.p.cfg.Service), &pb.NcmecFileUploaded{
		NcmecReportId: f.NCMECID, FileId: file.FileID, NcmecFileId: file.NCMECFileID, NcmecMd5: file.NCMECMD5, Filing: uint32(f.Filing)})
	if err != nil {
		return err
	}
	if err := j.p.d.Store.Described(j.ctx, f, file.Idx, doc, resp, ev); err != nil {
		return err
	}
	file.Described = true
	return j.p.reached("fileinfo:" + strconv.Itoa(file.Idx))
}

// upload streams one file from S3, decrypting, into /upload, and checks
// that NCMEC received exactly our bytes.
func (j *job) upload(file *store.File) error {
	f := j.f
	if f.Key == nil {
		return &fatal{step: StepUpload, desc: "the report's data key is no longer held", fileID: file.FileID}
	}
	dataKey, err := j.p.d.Keys.Unwrap(f.ReportID, *f.Key)
	if err != nil {
		// A retired master key or a key that does not authenticate will
		// not fix itself.
		return &fatal{step: StepUpload, desc: "the evidence cannot be decrypted: " + err.Error(), fileID: file.FileID}
	}
	defer clear(dataKey)
	// An upload is cancelled on shutdown (it may be long); it is repeated
	// by whoever resumes the filing.
	ctx, cancel := context.WithCancel(j.ctx)
	defer cancel()
	defer context.AfterFunc(j.stop, cancel)()

	rc, err := j.p.d.Evidence.Open(ctx, file.ObjectKey, dataKey)
	if err != nil {
		if errors.Is(err, evidence.ErrNotFound) {
			return &fatal{step: StepUpload, desc: "the evidence file is missing from storage: " + err.Error(), fileID: file.FileID}
		}
		return &transient{step: StepUpload, err: err}
	}
	defer rc.Close()
	// Every read of evidence bytes is audited: who (this service) and why.
	accessed, err := events.New(f.ReportID, events.Service(j.p.cfg.Service), &pb.EvidenceAccessed{FileId: file.FileID, Purpose: "upload to NCMEC"})
	if err != nil {
		return err
	}
	if err := j.p.d.Store.UploadAttempt(j.ctx, f, file.Idx, accessed); err != nil {
		return err
	}
	res, err := j.client.Upload(ctx, f.NCMECID, build.UploadName(j.pbFile(file.Idx)), file.Size, rc)
	if err != nil {
		if errors.Is(err, ncmec.ErrHashMismatch) {
			j.logCall(store.Call{Endpoint: ncmec.EndpointUpload, FileIdx: &file.Idx, Err: err, Response: rawOf(res)})
			return &fatal{step: StepUpload, fileID: file.FileID, desc: mismatch(file, res)}
		}
		if j.stop.Err() != nil && j.ctx.Err() == nil {
			return errStopped
		}
		if j.ctx.Err() == nil && !ncmec.IsAmbiguous(err) {
			// NCMEC answered: this attempt left no copy there.
			if rerr := j.p.d.Store.UploadRefused(j.ctx, f, file.Idx, store.Call{Endpoint: StepUpload, FileIdx: &file.Idx, Err: err}); rerr != nil {
				return rerr
			}
			file.UploadRefused++
			return j.outcome(StepUpload, file.FileID, err)
		}
		return j.callFailed(StepUpload, &file.Idx, file.FileID, err)
	}
	// The client compared NCMEC's MD5 with the bytes it sent; compare both
	// with what intake measured when the file arrived.
	if !strings.EqualFold(res.SentMD5, file.MD5) || (res.Hash != "" && !strings.EqualFold(res.Hash, file.MD5)) {
		j.logCall(store.Call{Endpoint: ncmec.EndpointUpload, FileIdx: &file.Idx, RequestID: res.RequestID, Response: res.Raw,
			Err: fmt.Errorf("md5 mismatch")})
		return &fatal{step: StepUpload, fileID: file.FileID, desc: mismatch(file, res)}
	}
	if res.Hash == "" {
		j.log.Warn("NCMEC answered the upload without an MD5; the bytes sent matched ours", logging.KeyFileID, file.FileID, logging.KeyNCMECFileID, res.FileID)
	}
	if err := j.p.d.Store.Uploaded(j.ctx, f, file.Idx, res); err != nil {
		return err
	}
	file.NCMECFileID, file.NCMECMD5 = res.FileID, res.Hash
	return nil
}

func rawOf(res *ncmec.UploadResult) []byte {
	if res == nil {
		return nil
	}
	return res.Raw
}

func mismatch(file *store.File, res *ncmec.UploadResult) string {
	got, sent, id := "", "", ""
	if res != nil {
		got, sent, id = res.Hash, res.SentMD5, res.FileID
	}
	return fmt.Sprintf("NCMEC's MD5 of file %s (NCMEC file id %s) is %q, sent %q, ours %q: the report holds a file that is not our evidence. "+
		"A file cannot be removed from an NCMEC report, so this report must not be finished: retract it and file again.",
		file.FileID, id, got, sent, file.MD5)
}
