package org.citysoc.spark;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.spark.unsafe.Platform;

/**
 * Which of a fixed list of literals occur in a string: one Aho-Corasick pass per row.
 *
 * <p>{@code Automaton.find(text)} returns a bitmap of the literals (indices into the list) that are
 * substrings of {@code text}: literal {@code i} is bit {@code i % 63} of word {@code i / 63} (63 bits a
 * word, so every mask is a positive SQL bigint). Always {@code ceil(n / 63)} words, all zero when no
 * literal occurs, so {@code (words[w] & mask) != 0} has exactly the meaning of
 * {@code contains(text, literal)}; {@code any} stops at the first literal found. The literals are
 * compared as given (CitySOC passes lower-cased literals); {@link FoldedMatch} runs the automaton on
 * Spark's UTF-8 bytes, folding ASCII case while it reads.
 *
 * <p>The automaton is built once per JVM and literal list (a static cache keyed by the list) and never
 * serialized: tasks ship only the literals.
 */
public final class MultiContains {
    public static final int BITS = 63;
    private static final Map<List<String>, Automaton> AUTOMATA = new ConcurrentHashMap<>();

    private MultiContains() {
    }

    static Automaton automaton(String[] literals) {
        return AUTOMATA.computeIfAbsent(List.of(literals), Automaton::new);
    }

    /** ASCII upper case to lower case; every other value unchanged. */
    static int fold(int c) {
        return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
    }

    static String[] checked(String[] literals) {
        for (String literal : literals) {
            if (literal == null || literal.isEmpty()) {
                throw new IllegalArgumentException("literals must be non-empty strings");
            }
        }
        return literals.clone();
    }

    /** Aho-Corasick with a dense transition table for ASCII and goto/fail lookups above it. */
    static final class Automaton {
        private static final int ASCII = 128;
        private final int count;
        private final int[] ascii;          // state * 128 + char -> next state (complete DFA)
        // The same DFA for the folded readers, small enough to stay in the CPU's caches: over classes of
        // bytes (`classes[byte]`: 0 for every byte no literal holds, in either case; one class per folded
        // character the literals hold), holding row offsets (state * width) instead of states, and
        // ~offset (negative) for a state where a literal ends: one table load and one sign test a byte.
        private final byte[] classes = new byte[ASCII];
        private final int width;
        private final int[] folded;
        private final int[] fail;
        private final int[][] outputs;      // literal indices ending in a state (fail chain merged)
        private final List<Map<Character, Integer>> wide;  // goto edges on chars >= 128

        Automaton(List<String> literals) {
            count = literals.size();
            List<int[]> asciiGoto = new ArrayList<>();
            List<Map<Character, Integer>> wideGoto = new ArrayList<>();
            List<List<Integer>> out = new ArrayList<>();
            asciiGoto.add(newRow());
            wideGoto.add(new HashMap<>());
            out.add(new ArrayList<>());
            for (int index = 0; index < literals.size(); index++) {
                String literal = literals.get(index);
                int state = 0;
                for (int i = 0; i < literal.length(); i++) {
                    char c = literal.charAt(i);
                    int next = c < ASCII ? asciiGoto.get(state)[c] : wideGoto.get(state).getOrDefault(c, -1);
                    if (next < 0) {
                        next = asciiGoto.size();
                        asciiGoto.add(newRow());
                        wideGoto.add(new HashMap<>());
                        out.add(new ArrayList<>());
                        if (c < ASCII) {
                            asciiGoto.get(state)[c] = next;
                        } else {
                            wideGoto.get(state).put(c, next);
                        }
                    }
                    state = next;
                }
                out.get(state).add(index);
            }
            int states = asciiGoto.size();
            fail = new int[states];
            ascii = new int[states * ASCII];
            ArrayDeque<Integer> queue = new ArrayDeque<>();
            for (int c = 0; c < ASCII; c++) {
                int next = asciiGoto.get(0)[c];
                ascii[c] = Math.max(next, 0);
                if (next > 0) {
                    queue.add(next);
                }
            }
            for (int next : wideGoto.get(0).values()) {
                queue.add(next);
            }
            while (!queue.isEmpty()) {  // breadth first: a state's fail target is complete before it
                int state = queue.poll();
                out.get(state).addAll(out.get(fail[state]));
                for (int c = 0; c < ASCII; c++) {
                    int next = asciiGoto.get(state)[c];
                    if (next > 0) {
                        fail[next] = ascii[fail[state] * ASCII + c];
                        ascii[state * ASCII + c] = next;
                        queue.add(next);
                    } else {
                        ascii[state * ASCII + c] = ascii[fail[state] * ASCII + c];
                    }
                }
                for (Map.Entry<Character, Integer> edge : wideGoto.get(state).entrySet()) {
                    fail[edge.getValue()] = wideStep(wideGoto, fail[state], edge.getKey());
                    queue.add(edge.getValue());
                }
            }
            outputs = new int[states][];
            for (int state = 0; state < states; state++) {
                outputs[state] = out.get(state).stream().mapToInt(Integer::intValue).distinct().toArray();
            }
            wide = wideGoto;
            boolean[] held = new boolean[ASCII];  // folded characters the literals hold
            for (String literal : literals) {
                literal.chars().filter(c -> c < ASCII).forEach(c -> held[fold(c)] = true);
            }
            int kinds = 1;
            for (int c = 0; c < ASCII; c++) {
                if (fold(c) == c && held[c]) {
                    classes[c] = (byte) kinds;
                    classes[c >= 'a' && c <= 'z' ? c ^ 0x20 : c] = (byte) kinds;  // and its upper case
                    kinds++;
                }
            }
            width = kinds;
            folded = new int[states * width];
            for (int state = 0; state < states; state++) {
                for (int c = 0; c < ASCII; c++) {
                    int next = ascii[state * ASCII + fold(c)];
                    folded[state * width + classes[c]] = outputs[next].length > 0 ? ~(next * width) : next * width;
                }
            }
        }

        private static int[] newRow() {
            int[] row = new int[ASCII];
            Arrays.fill(row, -1);
            return row;
        }

        private int wideStep(List<Map<Character, Integer>> wideGoto, int state, char c) {
            while (true) {
                Integer next = wideGoto.get(state).get(c);
                if (next != null) {
                    return next;
                }
                if (state == 0) {
                    return 0;
                }
                state = fail[state];
            }
        }

        /** True when some literal occurs: stops at the first. */
        boolean any(String text) {
            int state = 0;
            for (int i = 0, n = text.length(); i < n; i++) {
                char c = text.charAt(i);
                state = c < ASCII ? ascii[state * ASCII + c] : wideStep(wide, state, c);
                if (outputs[state].length > 0) {
                    return true;
                }
            }
            return false;
        }

        /**
         * {@link #any} on UTF-8 bytes, ASCII upper case folded to lower case while stepping: 1 when
         * some literal occurs, 0 when none does, -1 at the first byte outside ASCII (the caller then
         * lower-cases the text exactly as Spark's {@code lower()} does and uses {@link #any}).
         */
        int anyFolded(Object base, long offset, int length) {
            int row = 0;  // state 0 ends no literal (literals are non-empty)
            for (int i = 0; i < length; i++) {
                int b = Platform.getByte(base, offset + i);
                if (b < 0) {
                    return -1;
                }
                row = folded[row + classes[b]];
                if (row < 0) {
                    return 1;
                }
            }
            return 0;
        }

        /** {@link #find} on UTF-8 bytes with ASCII folding; null at the first byte outside ASCII. */
        long[] findFolded(Object base, long offset, int length) {
            long[] words = new long[(count + BITS - 1) / BITS];
            int row = 0;
            for (int i = 0; i < length; i++) {
                int b = Platform.getByte(base, offset + i);
                if (b < 0) {
                    return null;
                }
                row = folded[row + classes[b]];
                if (row < 0) {
                    row = ~row;
                    for (int literal : outputs[row / width]) {
                        words[literal / BITS] |= 1L << (literal % BITS);
                    }
                }
            }
            return words;
        }

        long[] find(String text) {
            long[] words = new long[(count + BITS - 1) / BITS];
            int state = 0;
            for (int i = 0, n = text.length(); i < n; i++) {
                char c = text.charAt(i);
                state = c < ASCII ? ascii[state * ASCII + c] : wideStep(wide, state, c);
                for (int literal : outputs[state]) {
                    words[literal / BITS] |= 1L << (literal % BITS);
                }
            }
            return words;
        }
    }
}
