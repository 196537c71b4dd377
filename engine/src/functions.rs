//! Non-geometric UDFs the translator needs beyond DataFusion's own functions.

use std::sync::Arc;

use arrow::array::Float64Array;
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use rand::{Rng, SeedableRng};

/// `adql_rand(seed)`: ADQL's `RAND(seed)`, uniform in [0, 1). Each batch draws from a
/// generator seeded with `seed`, so a query over the same data gives the same values.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SeededRand {
    signature: Signature,
}

impl ScalarUDFImpl for SeededRand {
    fn name(&self) -> &str {
        "adql_rand"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let seed = match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(s))) => *s,
            ColumnarValue::Scalar(_) => {
                return exec_err!("RAND: the seed must be a non-null integer");
            }
            ColumnarValue::Array(_) => return exec_err!("RAND: the seed must be a constant"),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed as u64);
        let v: Float64Array = (0..args.number_rows)
            .map(|_| Some(rng.random::<f64>()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(v)))
    }
}

/// The UDFs of this module.
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(SeededRand {
        signature: Signature::exact(vec![DataType::Int64], Volatility::Volatile),
    })]
}
