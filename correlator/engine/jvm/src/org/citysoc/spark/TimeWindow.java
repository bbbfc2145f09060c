package org.citysoc.spark;

import java.io.Serializable;

/**
 * A detection window {@code [since, until)} in microseconds since the epoch, either side open.
 *
 * <p>The object is the target of a Catalyst {@code Invoke} ({@link Functions}, {@code
 * citysoc_in_window}): generated code holds it as a reference, not its bounds as Java literals, so the
 * code of a query over one window is the code of the same query over the next. A service that detects
 * over a moving window (`soc detect --every`) then compiles its plans' classes once, and the JIT's
 * work on them carries over from run to run, instead of new classes for every window.
 */
public final class TimeWindow implements Serializable {
    private static final long serialVersionUID = 1L;

    private final long since;
    private final long until;
    private final boolean bounded;  // false: no end

    public TimeWindow(Long since, Long until) {
        this.since = since == null ? Long.MIN_VALUE : since;
        this.bounded = until != null;
        this.until = until == null ? Long.MAX_VALUE : until;
    }

    /** Whether {@code micros} lies in the window (since included, until excluded). */
    public boolean contains(long micros) {
        return micros >= since && (!bounded || micros < until);
    }

    @Override
    public String toString() {
        return "TimeWindow[" + since + ", " + (bounded ? Long.toString(until) : "") + ")";
    }
}
