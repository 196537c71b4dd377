//! DataFusion scalar UDFs over the kernels of [`super::kernels`].
//!
//! One [`ScalarUDFImpl`] type, [`GeomUdf`], parameterised by the function. Signatures are
//! user-defined: numeric arguments of any numeric type (or NULL) are coerced to Float64,
//! geometry arguments (lists of any numeric type, or NULL) to `List<Float64>`, HEALPix
//! orders and indices (any integer type) to Int64. All functions are strict (null in → null
//! out) and immutable. Runtime failures are `DataFusionError::Execution("geometry: …")`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::kernels::{self, Geom, Int, KResult, Num, geometry_type};

/// The functions, by SQL name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Func {
    Point,
    Circle,
    Polygon,
    Box,
    Contains,
    Intersects,
    PointInCircle,
    PointInPolygon,
    Distance,
    DistanceGeom,
    Area,
    Centroid,
    Coord1,
    Coord2,
    HealpixIndex,
    HealpixCenter,
    ConeCells,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    Num,
    Geom,
    Int,
}

const ALL: [Func; 17] = [
    Func::Point,
    Func::Circle,
    Func::Polygon,
    Func::Box,
    Func::Contains,
    Func::Intersects,
    Func::PointInCircle,
    Func::PointInPolygon,
    Func::Distance,
    Func::DistanceGeom,
    Func::Area,
    Func::Centroid,
    Func::Coord1,
    Func::Coord2,
    Func::HealpixIndex,
    Func::HealpixCenter,
    Func::ConeCells,
];

impl Func {
    fn name(self) -> &'static str {
        match self {
            Func::Point => "adql_point",
            Func::Circle => "adql_circle",
            Func::Polygon => "adql_polygon",
            Func::Box => "adql_box",
            Func::Contains => "adql_contains",
            Func::Intersects => "adql_intersects",
            Func::PointInCircle => "adql_point_in_circle",
            Func::PointInPolygon => "adql_point_in_polygon",
            Func::Distance => "adql_distance",
            Func::DistanceGeom => "adql_distance_geom",
            Func::Area => "adql_area",
            Func::Centroid => "adql_centroid",
            Func::Coord1 => "adql_coord1",
            Func::Coord2 => "adql_coord2",
            Func::HealpixIndex => "ivo_healpix_index",
            Func::HealpixCenter => "ivo_healpix_center",
            Func::ConeCells => "adql_cone_cells",
        }
    }

    /// Argument kinds; `None` for the variadic polygon.
    fn args(self) -> Option<&'static [Arg]> {
        use Arg::*;
        Some(match self {
            Func::Point => &[Num, Num],
            Func::Circle => &[Num, Num, Num],
            Func::Polygon => return None,
            Func::Box => &[Num, Num, Num, Num],
            Func::Contains | Func::Intersects | Func::DistanceGeom => &[Geom, Geom],
            Func::PointInCircle => &[Num, Num, Num, Num, Num],
            Func::PointInPolygon => &[Num, Num, Geom],
            Func::Distance => &[Num, Num, Num, Num],
            Func::Area | Func::Centroid | Func::Coord1 | Func::Coord2 => &[Geom],
            Func::HealpixIndex => &[Int, Num, Num],
            Func::HealpixCenter => &[Int, Int],
            Func::ConeCells => &[Int, Num, Num, Num],
        })
    }

    fn ret(self) -> DataType {
        match self {
            Func::Point
            | Func::Circle
            | Func::Polygon
            | Func::Box
            | Func::Centroid
            | Func::HealpixCenter => geometry_type(),
            Func::Contains | Func::Intersects | Func::PointInCircle | Func::PointInPolygon => {
                DataType::Int32
            }
            Func::Distance | Func::DistanceGeom | Func::Area | Func::Coord1 | Func::Coord2 => {
                DataType::Float64
            }
            Func::HealpixIndex => DataType::Int64,
            Func::ConeCells => cells_type(),
        }
    }
}

/// A geometry function as a DataFusion scalar UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GeomUdf {
    func: Func,
    signature: Signature,
}

/// All geometry UDFs: `adql_point`, `adql_circle`, `adql_polygon`, `adql_box`,
/// `adql_contains`, `adql_intersects`, `adql_point_in_circle`, `adql_point_in_polygon`,
/// `adql_distance`, `adql_distance_geom`, `adql_area`, `adql_centroid`, `adql_coord1`,
/// `adql_coord2`, `ivo_healpix_index`, `ivo_healpix_center`, and `adql_cone_cells`, which
/// only the crossmatch rewrite emits (see `crate::translate::xmatch`).
pub fn udfs() -> Vec<ScalarUDF> {
    ALL.iter()
        .map(|&func| {
            ScalarUDF::new_from_impl(GeomUdf {
                func,
                signature: Signature::user_defined(Volatility::Immutable),
            })
        })
        .collect()
}

fn is_num(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Null
}

impl ScalarUDFImpl for GeomUdf {
    fn name(&self) -> &str {
        self.func.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.func.ret())
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.func.name();
        let kinds: Vec<Arg> = match self.func.args() {
            Some(k) => {
                if k.len() != types.len() {
                    return plan_err!("{name} takes {} arguments, got {}", k.len(), types.len());
                }
                k.to_vec()
            }
            None => {
                if types.len() < 6 || !types.len().is_multiple_of(2) {
                    return plan_err!(
                        "{name} takes an even number ≥ 6 of coordinates (ra1, dec1, ra2, dec2, …), got {}",
                        types.len()
                    );
                }
                vec![Arg::Num; types.len()]
            }
        };
        types
            .iter()
            .zip(kinds)
            .enumerate()
            .map(|(i, (t, k))| match k {
                Arg::Num if is_num(t) => Ok(DataType::Float64),
                Arg::Int if t.is_integer() || *t == DataType::Null => Ok(DataType::Int64),
                Arg::Geom => match t {
                    DataType::Null => Ok(geometry_type()),
                    DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
                        if is_num(f.data_type()) =>
                    {
                        Ok(geometry_type())
                    }
                    _ => plan_err!("{name}: argument {} must be a geometry, got {t}", i + 1),
                },
                Arg::Num => plan_err!("{name}: argument {} must be numeric, got {t}", i + 1),
                Arg::Int => plan_err!("{name}: argument {} must be an integer, got {t}", i + 1),
            })
            .collect()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let out = evaluate(self.func, &args.args, rows)?;
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

fn geo_err(msg: String) -> DataFusionError {
    DataFusionError::Execution(format!("geometry: {msg}"))
}

/// An argument converted to its kernel type, owning what the kernel borrows.
enum Held {
    NumS(Option<f64>),
    IntS(Option<i64>),
    GeomS(Option<Vec<f64>>),
    Arr(ArrayRef),
}

fn hold(v: &ColumnarValue, kind: Arg) -> Result<Held> {
    let target = match kind {
        Arg::Num => DataType::Float64,
        Arg::Int => DataType::Int64,
        Arg::Geom => geometry_type(),
    };
    match v {
        ColumnarValue::Array(a) => {
            if a.data_type() == &target {
                Ok(Held::Arr(Arc::clone(a)))
            } else {
                Ok(Held::Arr(cast(a, &target)?))
            }
        }
        ColumnarValue::Scalar(s) => {
            let s = if s.data_type() == target || s.is_null() {
                s.clone()
            } else {
                s.cast_to(&target)?
            };
            Ok(match kind {
                Arg::Num => Held::NumS(match s {
                    ScalarValue::Float64(v) => v,
                    _ => None,
                }),
                Arg::Int => Held::IntS(match s {
                    ScalarValue::Int64(v) => v,
                    _ => None,
                }),
                Arg::Geom => Held::GeomS(match s {
                    ScalarValue::List(l) if !l.is_null(0) => {
                        let v = l.value(0);
                        let v = if v.data_type() == &DataType::Float64 {
                            v
                        } else {
                            cast(&v, &DataType::Float64)?
                        };
                        let v = v.as_primitive::<Float64Type>();
                        if v.null_count() > 0 {
                            return Err(geo_err("a geometry value has a null coordinate".into()));
                        }
                        Some(v.values().to_vec())
                    }
                    _ => None,
                }),
            })
        }
    }
}

impl Held {
    fn num(&self) -> Num<'_> {
        match self {
            Held::NumS(v) => Num::Scalar(*v),
            Held::Arr(a) => Num::Array(a.as_primitive::<Float64Type>()),
            _ => Num::Scalar(None),
        }
    }

    fn int(&self) -> Int<'_> {
        match self {
            Held::IntS(v) => Int::Scalar(*v),
            Held::Arr(a) => Int::Array(a.as_primitive::<Int64Type>()),
            _ => Int::Scalar(None),
        }
    }

    fn geom(&self) -> Geom<'_> {
        match self {
            Held::GeomS(v) => Geom::Scalar(v.as_deref()),
            Held::Arr(a) => Geom::Array(a.as_list::<i32>()),
            _ => Geom::Scalar(None),
        }
    }
}

fn wrap<A: Array + 'static>(r: KResult<A>) -> Result<ArrayRef> {
    r.map(|a| Arc::new(a) as ArrayRef).map_err(geo_err)
}

fn evaluate(func: Func, args: &[ColumnarValue], rows: usize) -> Result<ArrayRef> {
    let kinds: Vec<Arg> = match func.args() {
        Some(k) => k.to_vec(),
        None => vec![Arg::Num; args.len()],
    };
    if kinds.len() != args.len() {
        return Err(DataFusionError::Internal(format!(
            "{} called with {} arguments",
            func.name(),
            args.len()
        )));
    }
    let held = args
        .iter()
        .zip(&kinds)
        .map(|(a, &k)| hold(a, k))
        .collect::<Result<Vec<_>>>()?;
    let n = |i: usize| held[i].num();
    let g = |i: usize| held[i].geom();
    match func {
        Func::Point => wrap(kernels::make_point(n(0), n(1), rows)),
        Func::Circle => wrap(kernels::make_circle(n(0), n(1), n(2), rows)),
        Func::Polygon => {
            let nums: Vec<Num<'_>> = held.iter().map(Held::num).collect();
            wrap(kernels::make_polygon(&nums, rows))
        }
        Func::Box => wrap(kernels::make_box(n(0), n(1), n(2), n(3), rows)),
        Func::Contains => wrap(kernels::contains(g(0), g(1), rows)),
        Func::Intersects => wrap(kernels::intersects(g(0), g(1), rows)),
        Func::PointInCircle => wrap(kernels::point_in_circle(n(0), n(1), n(2), n(3), n(4), rows)),
        Func::PointInPolygon => wrap(kernels::point_in_polygon(n(0), n(1), g(2), rows)),
        Func::Distance => wrap(kernels::distance(n(0), n(1), n(2), n(3), rows)),
        Func::DistanceGeom => wrap(kernels::distance_geom(g(0), g(1), rows)),
        Func::Area => wrap(kernels::area(g(0), rows)),
        Func::Centroid => wrap(kernels::centroid(g(0), rows)),
        Func::Coord1 => wrap(kernels::coord1(g(0), rows)),
        Func::Coord2 => wrap(kernels::coord2(g(0), rows)),
        Func::HealpixIndex => wrap(kernels::healpix_index(held[0].int(), n(1), n(2), rows)),
        Func::HealpixCenter => wrap(kernels::healpix_center(held[0].int(), held[1].int(), rows)),
        Func::ConeCells => cone_cells(held[0].int(), n(1), n(2), n(3), rows),
    }
}

/// `List<Int64>`, the type of `adql_cone_cells`.
fn cells_type() -> DataType {
    DataType::List(Arc::new(arrow::datatypes::Field::new(
        "item",
        DataType::Int64,
        true,
    )))
}

/// `adql_cone_cells(order, ra, dec, r)`: the NESTED cells at `order` (0..=29) that the circle
/// of radius `r` degrees around (`ra`, `dec`) touches, ascending (never missing one; see
/// `crate::translate::xmatch`). Null in, null out; invalid positions and radii are errors as
/// in the other kernels.
fn cone_cells(
    order: Int<'_>,
    ra: Num<'_>,
    dec: Num<'_>,
    r: Num<'_>,
    rows: usize,
) -> Result<ArrayRef> {
    use arrow::array::{Float64Array, Int64Array, ListArray};
    use arrow::buffer::{NullBuffer, OffsetBuffer};
    let get = |n: &Num<'_>, i: usize| -> Option<f64> {
        match n {
            Num::Scalar(v) => *v,
            Num::Array(a) => a.is_valid(i).then(|| a.value(i)),
        }
    };
    let arr = |a: &Float64Array| a.len();
    for n in [&ra, &dec, &r] {
        if let Num::Array(a) = n
            && arr(a) != rows
        {
            return Err(DataFusionError::Internal(
                "adql_cone_cells: row count".into(),
            ));
        }
    }
    let mut offsets = Vec::with_capacity(rows + 1);
    offsets.push(0i32);
    let mut values: Vec<i64> = Vec::with_capacity(rows * 9);
    let mut valid = Vec::with_capacity(rows);
    for i in 0..rows {
        let k = match order {
            Int::Scalar(v) => v,
            Int::Array(a) => a.is_valid(i).then(|| a.value(i)),
        };
        match (k, get(&ra, i), get(&dec, i), get(&r, i)) {
            (Some(k), Some(x), Some(y), Some(rad)) => {
                if !(0..=29).contains(&k) {
                    return Err(geo_err(format!("HEALPix order {k} outside 0..=29")));
                }
                crate::geom::Cap::new(x, y, rad).map_err(geo_err)?;
                crate::translate::xmatch::cone_cells(k as u8, x, y, rad, &mut values);
                valid.push(true);
            }
            _ => valid.push(false),
        }
        let end = i32::try_from(values.len())
            .map_err(|_| DataFusionError::Execution("adql_cone_cells: too many cells".into()))?;
        offsets.push(end);
    }
    let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
    let field = Arc::new(arrow::datatypes::Field::new("item", DataType::Int64, true));
    Ok(Arc::new(ListArray::try_new(
        field,
        OffsetBuffer::new(offsets.into()),
        Arc::new(Int64Array::from(values)),
        nulls,
    )?))
}
