package stats

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
)

// A million hosts make a gigabyte of XML: reading the records, writing
// their XML and compressing it are done on every core. The records are
// read a slice of numbers at a time, each slice by the next free worker,
// which writes its XML and compresses it into a deflate segment of its own
// that ends on a sync flush (pgzip's way: such segments put end to end are
// one deflate stream, each missing only the window of the one before, a
// few bytes in a megabyte). The caller's goroutine puts the segments into
// the file in the order of their numbers, with the checksum of what they
// hold.

// exportSlice is how many numbers a worker reads at a time: the peers
// wait for no longer than one slice takes to read, and an export holds a
// few slices' XML at a time (2 MB of hosts each).
const exportSlice = 2000

// gzipHeader is a gzip member's header as compress/gzip writes it at its
// fastest level: no name, no time, an unknown OS.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255}

// segment is one slice of records, as XML and compressed.
type segment struct {
	done    chan struct{} // closed when the rest is filled
	err     error
	xml     []byte
	deflate bytes.Buffer
	count   int       // records counted in tables.xml
	credits []float64 // users': tables.xml sums them in record order
}

// exportFile writes one gzip file of the records of kind into f: db_dump's
// XML declaration and root element around write's element for each
// record exported. It returns how many records tables.xml counts and, for
// users, their credit summed in record order.
func exportFile(ctx context.Context, src ExportSource, f io.Writer, kind Kind, write func([]byte, *Record) []byte, slice uint64) (count int, credit float64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	segs := make(chan *segment, workers)
	var (
		mu   sync.Mutex // the order of the slices
		from = uint64(1)
		end  bool // a slice has found no more records after it
		wg   sync.WaitGroup
		// Segments written are used again: their buffers have grown to
		// a slice's size. (A sync.Pool would lose them to every
		// collection, which a heap as large as the state runs often.)
		free = make(chan *segment, 2*workers+1)
	)
	for range workers {
		wg.Go(func() {
			zw, _ := flate.NewWriter(nil, flate.BestSpeed)
			var recs []Record
			for {
				mu.Lock()
				if end || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				var s *segment
				select {
				case s = <-free:
				default:
					s = new(segment)
				}
				s.done, s.err, s.count, s.credits = make(chan struct{}), nil, 0, s.credits[:0]
				lo := from
				from += slice
				segs <- s
				mu.Unlock()
				var more bool
				recs, more, s.err = src.Records(ctx, kind, lo, lo+slice, recs[:0])
				if s.err != nil || !more {
					mu.Lock()
					end = true
					mu.Unlock()
				}
				if s.err == nil {
					s.fill(recs, kind, write, zw)
				}
				close(s.done)
			}
		})
	}
	go func() {
		wg.Wait()
		close(segs)
	}()

	// The declaration and the root's start and end are compressed here:
	// the end with the stream's final block.
	root := string(kind)
	head := []byte(`<?xml version="1.0" encoding="utf-8"?>` + "\n<" + root + ">\n")
	tail := []byte("</" + root + ">\n")
	crc := crc32.Update(0, crc32.IEEETable, head)
	size := uint32(len(head))
	zw, _ := flate.NewWriter(f, flate.BestSpeed)
	_, err = f.Write(gzipHeader)
	if err == nil {
		_, err = zw.Write(head)
		err = errors.Join(err, zw.Flush())
	}
	// Every segment is waited for, after an error too, so that no worker
	// is left behind.
	for s := range segs {
		<-s.done
		if err == nil {
			err = s.err
		}
		if err == nil {
			count += s.count
			for _, c := range s.credits {
				credit += c
			}
			crc = crc32.Update(crc, crc32.IEEETable, s.xml)
			size += uint32(len(s.xml))
			_, err = f.Write(s.deflate.Bytes())
		}
		if err != nil {
			cancel()
		}
		select {
		case free <- s:
		default:
		}
	}
	if err == nil {
		// The workers stop early only on an error, or when the caller
		// gives up.
		err = ctx.Err()
	}
	if err != nil {
		return count, credit, err
	}
	crc = crc32.Update(crc, crc32.IEEETable, tail)
	size += uint32(len(tail))
	_, err = zw.Write(tail)
	if err = errors.Join(err, zw.Close()); err != nil {
		return count, credit, err
	}
	_, err = f.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, crc), size))
	return count, credit, err
}

// fill writes the XML of the records exported and compresses it.
func (s *segment) fill(recs []Record, kind Kind, write func([]byte, *Record) []byte, zw *flate.Writer) {
	b := s.xml[:0]
	for i := range recs {
		r := &recs[i]
		if !exported(kind, r) {
			continue
		}
		s.count++
		if kind == Users {
			s.credits = append(s.credits, r.Credit)
		}
		if !r.NoExport {
			b = write(b, r)
		}
	}
	s.xml = b
	s.deflate.Reset()
	zw.Reset(&s.deflate)
	_, s.err = zw.Write(b)
	s.err = errors.Join(s.err, zw.Flush())
}
