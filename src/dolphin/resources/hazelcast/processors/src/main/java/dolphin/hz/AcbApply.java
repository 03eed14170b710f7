package dolphin.hz;

import com.hazelcast.nio.ObjectDataInput;
import com.hazelcast.nio.ObjectDataOutput;
import java.io.IOException;

/**
 * Applies an ACB verdict (date, boost, beta) only when it is valid and newer: boost and beta
 * finite and inside the bounds sent with it, the date a YYYY-MM-DD not before the stored one,
 * and the sequence above the stored one (a processor that lost its writer lock cannot undo a
 * newer verdict).
 */
public final class AcbApply extends Guarded {
    private double minBoost;
    private double maxBoost;
    private double minBeta;
    private double maxBeta;

    @Override
    String refuse(Envelope next, Envelope current, String currentText) {
        String date = next.string("date");
        if (date == null || !date.matches("\\d{4}-\\d{2}-\\d{2}")) {
            return "invalid: date " + date;
        }
        double boost = next.number("boost");
        if (!(boost >= minBoost && boost <= maxBoost)) {
            return "invalid: boost outside [" + minBoost + ", " + maxBoost + "]";
        }
        double beta = next.number("beta");
        if (!(beta >= minBeta && beta <= maxBeta)) {
            return "invalid: beta outside [" + minBeta + ", " + maxBeta + "]";
        }
        if (current != null) {
            String storedDate = current.string("date");
            if (storedDate != null && date.compareTo(storedDate) < 0) {
                return "stale: date " + date + " before stored " + storedDate;
            }
        }
        return staleSeq(next, current);
    }

    @Override
    public int getClassId() {
        return ProcessorFactory.ACB_APPLY;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
        super.writeData(out);
        out.writeDouble(minBoost);
        out.writeDouble(maxBoost);
        out.writeDouble(minBeta);
        out.writeDouble(maxBeta);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
        super.readData(in);
        minBoost = in.readDouble();
        maxBoost = in.readDouble();
        minBeta = in.readDouble();
        maxBeta = in.readDouble();
    }
}
