package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"flvgw/pool"
	"flvgw/test/testkit"
)

// eachMember calls fn for every viewer the writer groups serve now.
func (w *writerGroups) eachMember(fn func(v *viewer)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, set := range w.byEntry {
		for _, grp := range set.list {
			grp.mu.Lock()
			for _, v := range grp.members {
				fn(v)
			}
			grp.mu.Unlock()
		}
	}
}

// members counts the viewers the writer groups serve now.
func (w *writerGroups) members() int {
	n := 0
	w.eachMember(func(*viewer) { n++ })
	return n
}

// serves says whether a group serves now the viewer whose client end is at
// clientAddr.
func (w *writerGroups) serves(clientAddr string) bool {
	found := false
	w.eachMember(func(v *viewer) { found = found || v.conn.RemoteAddr().String() == clientAddr })
	return found
}

// Viewers that keep up are served by writer groups of at most groupSize;
// a viewer that stops reading is handed back to its own session and the
// others play on; when everyone leaves, the groups' goroutines end
// (goleak in TestMain).
func TestWriterGroups(t *testing.T) {
	cfg := testConfig()
	cfg.SendBuffer = 8192
	r := startRelay(t, cfg)
	stopPub := publish(t, r, "w")
	defer stopPub()
	waitReady(t, r, "live/w")

	// A viewer that reads for a while, so that it catches up and joins a
	// group, and then reads nothing more.
	d := net.Dialer{}
	stuck, err := d.Dial("tcp", r.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	if _, err := io.WriteString(stuck, "GET /live/w.flv HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stopReading := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-stopReading:
				return
			default:
			}
			_ = stuck.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := stuck.Read(buf); err != nil && !isTimeout(err) {
				return
			}
		}
	}()

	const fast = groupSize + 10
	leave := make(chan struct{})
	plays := make(chan testkit.Play, fast)
	for range fast {
		go func() { plays <- testkit.PlayFLV(context.Background(), "http://"+r.httpAddr+"/live/w.flv", leave) }()
	}
	// A viewer's socket may not take a whole keyframe at once on a busy
	// machine, so that it is out of its group for a moment: the count of
	// members is not expected to be exact at any one instant.
	stuckAddr := stuck.LocalAddr().String()
	waitUntil(t, 20*time.Second, "the stuck viewer in a group, and two groups serving the viewers", func() bool {
		return r.gw.writers.serves(stuckAddr) && r.gw.writers.count() == 2 && r.gw.writers.members() > groupSize
	})
	groupsNow := func() (set *entryGroups, list []*writerGroup, changes uint64) {
		r.gw.writers.mu.Lock()
		defer r.gw.writers.mu.Unlock()
		for _, set := range r.gw.writers.byEntry { // one entry: live/w
			return set, slices.Clone(set.list), set.changes.Load()
		}
		return nil, nil, 0
	}
	setBefore, listBefore, changesBefore := groupsNow()
	close(stopReading)
	<-readerDone
	// Out of its group for a whole second: not a moment's handback it
	// recovers from, since it reads nothing more.
	var outSince time.Time
	waitUntil(t, 30*time.Second, "the stuck viewer handed back for good", func() bool {
		if r.gw.writers.serves(stuckAddr) {
			outSince = time.Time{}
			return false
		}
		if outSince.IsZero() {
			outSince = time.Now()
		}
		return time.Since(outSince) > time.Second
	})
	// A handback frees its place at once, and between passes each group's
	// count of members, which joiners read without its lock, is exact.
	r.gw.writers.mu.Lock()
	for _, set := range r.gw.writers.byEntry {
		for _, grp := range set.list {
			grp.mu.Lock()
			if n, size := len(grp.members), grp.size.Load(); int(size) != n {
				t.Errorf("group of %d members counts %d", n, size)
			}
			grp.mu.Unlock()
		}
	}
	r.gw.writers.mu.Unlock()
	// The handback counted as a place freed, for joiners to look again
	// (checked when the groups stayed the same, so that no start or
	// retirement could have counted instead).
	if set, list, changes := groupsNow(); set == setBefore && slices.Equal(list, listBefore) && changes == changesBefore {
		t.Errorf("handback left the entry's count of changes at %d", changes)
	}
	var m dto.Metric
	if err := r.gw.metrics.handbacks.Write(&m); err != nil || m.GetCounter().GetValue() < 1 {
		n := m.GetCounter().GetValue()
		t.Fatalf("handbacks %v, want at least 1", n)
	}
	time.Sleep(2 * time.Second) // the others play on
	close(leave)
	for range fast {
		p := <-plays
		if p.Status != 200 || !p.Left() {
			t.Fatalf("fast viewer: %d %v", p.Status, p.Err)
		}
		if err := p.Stream.CheckPlayable(); err != nil {
			t.Fatal(err)
		}
		if _, v := p.Stream.CountMedia(); v < 40 {
			t.Fatalf("fast viewer got %d video tags in 2 s", v)
		}
	}
	stuck.Close()
	waitUntil(t, 5*time.Second, "groups retired", func() bool {
		return r.gw.writers.count() == 0 && r.pool.Stats().Subscribers == 0
	})
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keepPending keeps exactly the bytes a partial write left, whatever
// buffer of the framed chunk the write stopped in.
func TestKeepPending(t *testing.T) {
	batch := [][]byte{[]byte("5\r\n"), []byte("ab"), []byte("cde"), crlf}
	whole := []byte("5\r\nabcde\r\n")
	for written := 0; written < len(whole); written++ {
		v := &viewer{}
		v.keepPending(append([][]byte(nil), batch...), written, 5, 42)
		got := bytes.Join(v.pending, nil)
		if !bytes.Equal(got, whole[written:]) {
			t.Fatalf("written %d: pending %q, want %q", written, got, whole[written:])
		}
		if v.pendN != 5 || v.pendAt != 42 {
			t.Fatalf("written %d: pendN %d pendAt %d", written, v.pendN, v.pendAt)
		}
	}
}

// A viewer that joins while a full group is in a pass goes to a group
// with room without waiting for that pass: here the full group's lock is
// held throughout, as a pass on a saturated machine may hold it, and the
// joiner must still start a group of its own.
func TestJoinSkipsFullGroups(t *testing.T) {
	r := startRelay(t, testConfig())
	stopPub := publish(t, r, "j")
	defer stopPub()
	waitReady(t, r, "live/j")
	url := "http://" + r.httpAddr + "/live/j.flv"

	leave := make(chan struct{})
	plays := make(chan testkit.Play, groupSize+1)
	for range groupSize {
		go func() { plays <- testkit.PlayFLV(context.Background(), url, leave) }()
	}
	groups := func() []*writerGroup { // of all entries: here, of live/j
		r.gw.writers.mu.Lock()
		defer r.gw.writers.mu.Unlock()
		var list []*writerGroup
		for _, set := range r.gw.writers.byEntry {
			list = append(list, set.list...)
		}
		return list
	}
	var full *writerGroup
	waitUntil(t, 20*time.Second, "one full group, held as in a pass", func() bool {
		list := groups()
		if len(list) != 1 || list[0].size.Load() != groupSize {
			return false
		}
		list[0].mu.Lock()
		if len(list[0].members) == groupSize {
			full = list[0]
			return true // keeps the lock
		}
		list[0].mu.Unlock()
		return false
	})
	release := sync.OnceFunc(full.mu.Unlock)
	defer release() // also when the wait below fails
	go func() { plays <- testkit.PlayFLV(context.Background(), url, leave) }()
	waitUntil(t, 20*time.Second, "the joiner in a group of its own beside the held one", func() bool {
		list := groups()
		return len(list) == 2 && list[0] == full && list[1].size.Load() == 1
	})
	release()
	time.Sleep(time.Second)
	close(leave)
	for range groupSize + 1 {
		p := <-plays
		if p.Status != 200 || !p.Left() {
			t.Fatalf("viewer: %d %v", p.Status, p.Err)
		}
		if err := p.Stream.CheckPlayable(); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 5*time.Second, "groups retired", func() bool {
		return r.gw.writers.count() == 0 && r.pool.Stats().Subscribers == 0
	})
}

// A viewer handed back and rejoining allocates nothing in join, however
// many groups its entry has: on a saturated machine viewers may cycle
// through handbacks many times a second, and garbage there would make the
// collector scan every viewer's stack more often.
func TestRejoinAllocatesNothing(t *testing.T) {
	e := new(pool.Entry)
	set := &entryGroups{}
	w := writerGroups{byEntry: map[*pool.Entry]*entryGroups{e: set}}
	for i := range 79 {
		grp := &writerGroup{e: e, set: set, members: make([]*viewer, 0, groupSize), kick: make(chan struct{}, 1)}
		if i < 78 {
			grp.members = grp.members[:groupSize]
		}
		grp.size.Store(int32(len(grp.members)))
		set.list = append(set.list, grp)
	}
	last := set.list[78]
	v := &viewer{}
	allocs := testing.AllocsPerRun(100, func() {
		if grp, started := w.join(e, v); grp != last || started {
			t.Fatal("joined a full group, or started one")
		}
		if !last.remove(v) {
			t.Fatal("not a member")
		}
		<-last.kick
	})
	if allocs != 0 {
		t.Fatalf("join and remove: %v allocations, want 0", allocs)
	}
}

// join tries every group its atomic count shows with room, one after
// another, and starts a group only when all of them turned out full:
// here the first nine filled up after their count was read (a stale
// count, as a joiner racing other joiners sees), and the tenth has room.
func TestJoinTriesEveryGroupWithRoom(t *testing.T) {
	e := new(pool.Entry)
	set := &entryGroups{}
	w := writerGroups{byEntry: map[*pool.Entry]*entryGroups{e: set}}
	list := make([]*writerGroup, 10)
	for i := range list {
		grp := &writerGroup{e: e, set: set, members: make([]*viewer, groupSize, groupSize), kick: make(chan struct{}, 1)}
		grp.size.Store(groupSize - 1) // stale: it filled since
		if i == len(list)-1 {
			grp.members = grp.members[:groupSize-1]
		}
		list[i] = grp
	}
	set.list = slices.Clone(list)
	v := &viewer{}
	if grp, started := w.join(e, v); grp != list[9] || started {
		t.Fatalf("joined %p (started: %v), want the tenth group %p", grp, started, list[9])
	}
	if n := len(set.list); n != len(list) {
		t.Fatalf("%d groups, want %d: join started one", n, len(list))
	}
}

// joinerWaitsForALock says whether a goroutine that the test creator
// started waits in join for a lock.
func joinerWaitsForALock(creator string) func() bool {
	return func() bool {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
			if bytes.Contains(g, []byte("[sync.Mutex.Lock")) && bytes.Contains(g, []byte("writerGroups).join(")) &&
				bytes.Contains(g, []byte("created by flvgw/gateway."+creator+" ")) {
				return true
			}
		}
		return false
	}
}

// A place freed in a group that a joiner has looked past (here a viewer
// leaves the first group while the joiner waits for the second, whose
// count was stale) sends the joiner back to it rather than to a group of
// its own.
func TestJoinSeesAPlaceFreedBehindIt(t *testing.T) {
	e := new(pool.Entry)
	set := &entryGroups{}
	w := writerGroups{byEntry: map[*pool.Entry]*entryGroups{e: set}}
	leaver := &viewer{}
	for i := range 2 {
		grp := &writerGroup{e: e, set: set, members: make([]*viewer, groupSize, groupSize), kick: make(chan struct{}, 1)}
		grp.size.Store(groupSize)
		set.list = append(set.list, grp)
		if i == 0 {
			grp.members[0] = leaver
		}
	}
	first, second := set.list[0], set.list[1]
	second.size.Store(groupSize - 1) // stale: it filled since
	second.mu.Lock()                 // as in a pass: the joiner waits here
	release := sync.OnceFunc(second.mu.Unlock)
	defer release() // also when the test fails before
	type joinedGroup struct {
		grp     *writerGroup
		started bool
	}
	joined := make(chan joinedGroup, 1)
	go func() {
		grp, started := w.join(e, &viewer{})
		joined <- joinedGroup{grp, started}
	}()
	waitUntil(t, 5*time.Second, "the joiner waiting for the second group's lock",
		joinerWaitsForALock("TestJoinSeesAPlaceFreedBehindIt"))
	if !first.remove(leaver) {
		t.Fatal("leaver not in the first group")
	}
	release()
	if j := <-joined; j.grp != first || j.started {
		t.Fatalf("joined %p (started: %v), want the first group %p with the place freed", j.grp, j.started, first)
	}
	if n := len(set.list); n != 2 {
		t.Fatalf("%d groups, want 2: join started one", n)
	}
}

// Every tag wakes every writer group: the source sends a tag only once
// each viewer has read the one before, so each tag lands while some group
// is between its pass, which found nothing more, and its wait. A group
// that took its wake-up channel after the pass (not before) misses such
// a tag, and its viewers wait for the next one, which never comes.
func TestEveryTagWakesEveryGroup(t *testing.T) {
	r := startRelay(t, testConfig())
	pub := publishKeyframe(t, r.pool, "live/pingpong")
	inter := []byte{0x27, 1, 0, 0, 0}
	frame := func(n uint32) []byte { return binary.BigEndian.AppendUint32(bytes.Clone(inter), n) }
	// Viewers on two groups, each reporting the number of every frame it
	// reads.
	const viewers, frames = groupSize + 2, 1000
	progress := make([]chan uint32, viewers)
	for i := range viewers {
		progress[i] = make(chan uint32, frames)
		conn, err := net.Dial("tcp", r.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /live/pingpong.flv HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(progress[i])
			br := bufio.NewReader(conn)
			for { // the response head
				line, err := br.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
			tr, err := testkit.NewTagReader(br)
			if err != nil {
				return
			}
			for {
				tag, err := tr.Next()
				if err != nil {
					return
				}
				if len(tag.Body) == len(inter)+4 && bytes.HasPrefix(tag.Body, inter) {
					progress[i] <- binary.BigEndian.Uint32(tag.Body[len(inter):])
				}
			}
		}()
	}
	waitUntil(t, 10*time.Second, "every viewer in a writer group", func() bool {
		return r.gw.writers.members() == viewers
	})
	for n := uint32(1); n <= frames; n++ {
		if err := pub.WriteTag(pool.TagVideo, 40*n, frame(n)); err != nil {
			t.Fatal(err)
		}
		for i := range viewers {
			select {
			case got, ok := <-progress[i]:
				if !ok || got != n {
					t.Fatalf("viewer %d read frame %d (stream open %v), want %d", i, got, ok, n)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("viewer %d did not get frame %d: its group was not woken for it", i, n)
			}
		}
	}
}
