package badgerstore_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/storetest"
)

// crashEnv names the store directory in the child process of
// TestCrashDurability; crashStartEnv the first entry index it writes.
const (
	crashBig      = 8000 // entries in a large call: several transactions
	crashEnv      = "COMMONS_BADGERSTORE_CRASH_DIR"
	crashStartEnv = "COMMONS_BADGERSTORE_CRASH_START"
)

// crashEntry returns entry i of the crash test: commons a or b by parity.
func crashEntry(i int) store.Entry {
	c := storetest.CommonsID("a")
	if i%2 == 1 {
		c = storetest.CommonsID("b")
	}
	return storetest.Entry(c, "crash-"+strconv.Itoa(i))
}

// crashChild writes batches forever and prints "index cursor" for every
// entry of a PutRecords call after the call returns nil. Every seventh call
// is large enough to need several badger transactions.
func crashChild(dir string, start int) {
	s, err := openQuiet(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	next := start
	for call := 0; ; call++ {
		n := 1 + call%40
		if call%7 == 6 {
			n = crashBig
		}
		es := make([]store.Entry, n)
		for k := range es {
			es[k] = crashEntry(next + k)
		}
		cursors, err := s.PutRecords(bg, es)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child put:", err)
			os.Exit(2)
		}
		var b []byte
		for k, cur := range cursors {
			b = fmt.Appendf(b, "%d %d\n", next+k, cur)
		}
		if _, err := os.Stdout.Write(b); err != nil {
			os.Exit(3)
		}
		next += n
	}
}

func TestCrashDurability(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		start, _ := strconv.Atoi(os.Getenv(crashStartEnv))
		crashChild(dir, start)
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	reported := map[int]uint64{} // entry index → cursor the child was told
	start := 0
	for round, killAfter := range []int{300, 3000, 12000} {
		last := runAndKill(t, dir, start, killAfter, reported)
		stored := checkCrashStore(t, dir, reported)
		t.Logf("round %d: killed after %d reported entries; %d reported in all, %d stored", round, killAfter, len(reported), stored)
		start = last + crashBig + 1 // past any partly stored call
	}
}

// runAndKill starts a child at entry start, reads its reports until it has
// reported killAfter entries, kills it with SIGKILL and returns the
// highest index reported.
func runAndKill(t *testing.T, dir string, start, killAfter int, reported map[int]uint64) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashStartEnv+"="+strconv.Itoa(start))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Only whole lines count: the kill can cut the child's last write.
	r := bufio.NewReader(out)
	readLine := func() (i int, cur uint64, ok bool) {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return 0, 0, false
			}
			if _, err := fmt.Sscanf(line, "%d %d\n", &i, &cur); err == nil {
				return i, cur, true
			}
		}
	}
	last, n := start, 0
	for n < killAfter {
		i, cur, ok := readLine()
		if !ok {
			break
		}
		reported[i] = cur
		last, n = i, n+1
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for { // lines the child wrote before it died: also acknowledged
		i, cur, ok := readLine()
		if !ok {
			break
		}
		reported[i] = cur
		last = i
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child did not die by signal: %v", err)
	}
	if n < killAfter {
		t.Fatalf("child reported only %d entries", n)
	}
	return last
}

// checkCrashStore reopens the store and checks that every reported entry
// is stored at its reported cursor and that the feeds have no gaps.
// It returns the number of records stored.
func checkCrashStore(t *testing.T, dir string, reported map[int]uint64) (stored int) {
	t.Helper()
	s := open(t, dir)
	defer s.Close()
	feeds := map[cid.Cid]map[uint64]cid.Cid{}
	for _, c := range []cid.Cid{storetest.CommonsID("a"), storetest.CommonsID("b")} {
		head, err := s.FeedHead(bg, c)
		if err != nil {
			t.Fatal(err)
		}
		all, err := s.Feed(bg, c, 0, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(all)) != head {
			t.Fatalf("head %d but %d records in the feed", head, len(all))
		}
		stored += len(all)
		feeds[c] = map[uint64]cid.Cid{}
		for i, st := range all {
			if st.Cursor != uint64(i+1) {
				t.Fatalf("feed gap: record %d has cursor %d", i, st.Cursor)
			}
			feeds[c][st.Cursor] = st.CID
		}
	}
	for i, cur := range reported {
		e := crashEntry(i)
		if cur == 0 {
			t.Fatalf("entry %d reported with cursor 0", i)
		}
		if got := feeds[e.Commons][cur]; !got.Equals(e.CID) {
			t.Fatalf("entry %d reported at cursor %d, feed has %s there", i, cur, got)
		}
		raw, err := s.GetRecord(bg, e.CID)
		if err != nil || string(raw) != string(e.Raw) {
			t.Fatalf("entry %d: GetRecord = %q, %v", i, raw, err)
		}
	}
	return stored
}
