package dolphin.hz;

/**
 * Sets the posture cell (posture + Rm) only if the update's sequence is newer than the stored
 * one. The posture must be one of APEX, STALKER, TURTLE, HIBERNATE and Rm, when given, a
 * number in [0, 1]. A stored value that is not an envelope is replaced (a corrupt cell heals).
 */
public final class PostureSet extends Guarded {
    private static final java.util.Set<String> POSTURES =
            java.util.Set.of("APEX", "STALKER", "TURTLE", "HIBERNATE");

    @Override
    String refuse(Envelope next, Envelope current, String currentText) {
        String posture = next.string("posture");
        if (posture == null || !POSTURES.contains(posture)) {
            return "invalid: posture " + posture;
        }
        if (next.has("rm")) {
            double rm = next.number("rm");
            if (!(rm >= 0.0 && rm <= 1.0)) {
                return "invalid: rm out of [0, 1]";
            }
        }
        return staleSeq(next, current);
    }

    @Override
    public int getClassId() {
        return ProcessorFactory.POSTURE_SET;
    }
}
