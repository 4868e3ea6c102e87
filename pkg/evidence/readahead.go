package evidence

import (
	"io"
	"sync"
)

// readAhead reads r on a goroutine of its own, up to depth chunks ahead of
// its reader, and writes every chunk to sink (the hashes) before handing it
// on. minio-go's streaming upload alternates between filling a part and
// sending it; without read-ahead, receiving and hashing the next part would
// wait for every send. With it they overlap, for depth × chunk bytes of
// memory, and the hashes see whole chunks, not the 64 KiB reads of sio.
type readAhead struct {
	chunks chan []byte
	free   chan []byte
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	buf    []byte // the chunk being read, returned to free when used up
	cur    []byte // what is left of buf
	err    error  // set before chunks is closed
}

func newReadAhead(r io.Reader, sink io.Writer, chunk, depth int) *readAhead {
	ra := &readAhead{
		chunks: make(chan []byte, depth),
		free:   make(chan []byte, depth+1),
		stop:   make(chan struct{}),
	}
	// Chunks are made as the reading gets ahead, so a file that needs
	// few costs few.
	made := 0
	ra.wg.Add(1)
	go func() {
		defer ra.wg.Done()
		defer close(ra.chunks)
		for {
			var buf []byte
			if made <= depth && len(ra.free) == 0 {
				buf, made = getChunk(chunk), made+1
			} else {
				select {
				case buf = <-ra.free:
				case <-ra.stop:
					return
				}
			}
			n, err := io.ReadFull(r, buf[:cap(buf)])
			if n > 0 {
				sink.Write(buf[:n]) // hashes never fail
				select {
				case ra.chunks <- buf[:n]:
				case <-ra.stop:
					return
				}
			}
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			if err != nil {
				ra.err = err
				return
			}
		}
	}()
	return ra
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.buf != nil {
			ra.free <- ra.buf
			ra.buf = nil
		}
		c, ok := <-ra.chunks
		if !ok {
			return 0, ra.err
		}
		ra.buf, ra.cur = c, c
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the goroutine and waits for it, so that what it read (sizes,
// hashes) may be looked at afterwards. It waits at most for one read of the
// source in progress to return. Closing twice is harmless. The chunks go
// back to the pool only if the reader is done with them (Close after the
// upload), never while the upload might still read one.
func (ra *readAhead) Close() {
	ra.once.Do(func() { close(ra.stop) })
	ra.wg.Wait()
}

// recycle returns the chunks to the pool. Only for a reader nobody reads
// any more: the caller's upload has returned.
func (ra *readAhead) recycle() {
	ra.Close()
	if ra.buf != nil {
		putChunk(ra.buf)
		ra.buf, ra.cur = nil, nil
	}
	for {
		select {
		case b := <-ra.free:
			putChunk(b)
			continue
		default:
		}
		break
	}
	for b := range ra.chunks { // closed by the stopped goroutine
		putChunk(b)
	}
}

// chunks recycles read-ahead chunks between Puts: a fresh 17 MiB of
// garbage per Put made the heap, and so the RSS, of many uploads at once
// about twice their live buffers.
var chunks sync.Pool

func getChunk(n int) []byte {
	if b, ok := chunks.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]byte, n)
}

func putChunk(b []byte) { chunks.Put(&b) }
