package org.citysoc.spark;

import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.catalyst.util.CollationSupport;
import org.apache.spark.unsafe.Platform;
import org.apache.spark.unsafe.types.UTF8String;

/**
 * Tests of {@code lower(text)} against fixed lower-cased literals, read straight from Spark's UTF-8
 * bytes: no {@code lower()} copy of the text and no Java {@code String} per row.
 *
 * <p>The object is the target of a Catalyst {@code Invoke} ({@link Functions}): generated code calls
 * {@link #any}, {@link #bitmap} or {@link #in} with the row's {@code UTF8String}. ASCII text (nearly
 * all of it) is folded byte by byte while it is read; at the first byte outside ASCII the text is
 * lower-cased exactly as Spark's {@code lower()} does ({@code CollationSupport.Lower.exec} with the
 * session's ICU setting, captured when the expression is built) and tested as before. So each call
 * answers exactly what {@code ContainsAny(lower(text))}, {@code MultiContains(lower(text))} or
 * {@code lower(text) IN (...)} answer. Null text never reaches these methods (the Invoke propagates it).
 */
public final class FoldedMatch implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final int UTF8_BINARY = 0;  // CollationFactory.UTF8_BINARY_COLLATION_ID

    private final String kind;
    private final String[] literals;
    private final boolean icu;
    private transient MultiContains.Automaton automaton;
    private transient byte[][] keys;
    private transient volatile int[] table;  // written after keys: a thread that sees it sees them

    public FoldedMatch(String kind, String[] literals, boolean icu) {
        if (!kind.equals("any") && !kind.equals("bitmap") && !kind.equals("in")) {
            throw new IllegalArgumentException("unknown kind " + kind);
        }
        this.kind = kind;
        // `in` compares whole values (an empty literal is the empty value); the others look for substrings
        this.literals = kind.equals("in") ? Arrays.stream(literals).map(java.util.Objects::requireNonNull)
            .toArray(String[]::new) : MultiContains.checked(literals);
        this.icu = icu;
    }

    private UTF8String lowered(UTF8String text) {
        return CollationSupport.Lower.exec(text, UTF8_BINARY, icu);
    }

    private MultiContains.Automaton machine() {
        MultiContains.Automaton machine = automaton;
        if (machine == null) {
            machine = MultiContains.automaton(literals);
            automaton = machine;
        }
        return machine;
    }

    /** Whether some literal occurs in {@code lower(text)}. */
    public boolean any(UTF8String text) {
        MultiContains.Automaton machine = machine();
        int found = machine.anyFolded(text.getBaseObject(), text.getBaseOffset(), text.numBytes());
        return found < 0 ? machine.any(lowered(text).toString()) : found > 0;
    }

    /** The {@link MultiContains} bitmap of the literals that occur in {@code lower(text)}. */
    public ArrayData bitmap(UTF8String text) {
        MultiContains.Automaton machine = machine();
        long[] words = machine.findFolded(text.getBaseObject(), text.getBaseOffset(), text.numBytes());
        if (words == null) {
            words = machine.find(lowered(text).toString());
        }
        return UnsafeArrayData.fromPrimitiveArray(words);
    }

    /** Whether {@code lower(text)} equals one of the literals. */
    public boolean in(UTF8String text) {
        if (table == null) {
            buildTable();
        }
        Object base = text.getBaseObject();
        long offset = text.getBaseOffset();
        int length = text.numBytes();
        for (int i = 0; i < length; i++) {
            if (Platform.getByte(base, offset + i) < 0) {
                UTF8String exact = lowered(text);
                return lookup(exact.getBaseObject(), exact.getBaseOffset(), exact.numBytes());
            }
        }
        return lookup(base, offset, length);
    }

    private static int hash(Object base, long offset, int length) {
        int h = length;
        for (int i = 0; i < length; i++) {
            h = 31 * h + MultiContains.fold(Platform.getByte(base, offset + i));
        }
        return h ^ (h >>> 16);
    }

    /** Text bytes are folded as they are compared: a no-op on text {@link #lowered} already lower-cased. */
    private boolean lookup(Object base, long offset, int length) {
        int[] slots = table;
        int mask = slots.length - 1;
        for (int slot = hash(base, offset, length) & mask; slots[slot] != 0; slot = (slot + 1) & mask) {
            byte[] key = keys[slots[slot] - 1];
            if (key.length == length && equalsFolded(key, base, offset)) {
                return true;
            }
        }
        return false;
    }

    private static boolean equalsFolded(byte[] key, Object base, long offset) {
        for (int i = 0; i < key.length; i++) {
            if (key[i] != MultiContains.fold(Platform.getByte(base, offset + i))) {
                return false;
            }
        }
        return true;
    }

    private synchronized void buildTable() {
        if (table != null) {
            return;
        }
        byte[][] built = new byte[literals.length][];
        int size = Integer.highestOneBit(Math.max(2, literals.length * 2 - 1)) << 1;
        int[] slots = new int[size];
        for (int index = 0; index < literals.length; index++) {
            built[index] = literals[index].getBytes(StandardCharsets.UTF_8);
            byte[] key = built[index];  // a literal with upper case never equals folded text, as with lower()
            int slot = hash(key, Platform.BYTE_ARRAY_OFFSET, key.length) & (size - 1);
            while (slots[slot] != 0) {
                slot = (slot + 1) & (size - 1);
            }
            slots[slot] = index + 1;
        }
        keys = built;
        table = slots;
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof FoldedMatch that && kind.equals(that.kind) && icu == that.icu
            && Arrays.equals(literals, that.literals);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * kind.hashCode() + Arrays.hashCode(literals)) + (icu ? 1 : 0);
    }

    @Override
    public String toString() {
        return "citysoc_" + kind + "_folded" + Arrays.toString(literals);
    }
}
