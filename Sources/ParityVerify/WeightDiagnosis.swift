import ParityCore
import ParityEngine

enum WeightDiagnosis {
    static func diagnose(_ binding: RuntimeWeight, reference: [Float]) -> String? { nil }
}
